-- graphc-fuzz-frontend: --shape input1=Bx3 --expect-error
-- Found by mutating samples/rnn.lua. nn.Linear with a negative inputSize: the default init
-- 1/math.sqrt(inputSize) raised ValueError (math domain error) instead of a located error.
local x = nn.Identity()()
return nn.gModule({x}, {nn.Linear(-1, 2)(x)})
