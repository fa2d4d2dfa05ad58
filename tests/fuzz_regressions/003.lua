-- graphc-fuzz-frontend: --shape input1=Bx3 --expect-error
-- Found by the module-argument fuzz: nn.Add(0) (init stdv 1/sqrt(inputSize)) raised
-- ZeroDivisionError (nn.Add(-2): ValueError) instead of a located error.
local x = nn.Identity()()
return nn.gModule({x}, {nn.Add(0)(x)})
