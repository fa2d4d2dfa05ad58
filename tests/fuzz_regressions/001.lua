-- graphc-fuzz-frontend: --shape input1=Bx3 --expect-error
-- Found by mutating samples/lenet.lua (nn.Linear(120, 84) -> nn.Linear(-0, 84)).
-- nn.Linear with inputSize 0: the default init stdv 1/sqrt(inputSize) raised
-- ZeroDivisionError (graphc: internal error) instead of a located error at the constructor.
local x = nn.Identity()()
return nn.gModule({x}, {nn.Linear(0, 2)(x)})
