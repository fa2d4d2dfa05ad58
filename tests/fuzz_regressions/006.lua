-- graphc-fuzz-frontend: --shape input1=Bx4x3 --expect-error --limit 5
-- Found by mutating samples/charrnn.lua (:split(4) -> :split(2147483648)).
-- node:split(n) makes all n output nodes at once, so a huge n never finishes (or runs out of
-- memory); expected: a located error right away (n is far more than any table can hold).
local x = nn.Identity()()
local a, b = nn.SplitTable(2)(x):split(2^31)
return nn.gModule({x}, {a, b})
