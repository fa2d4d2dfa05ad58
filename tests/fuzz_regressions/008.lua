-- graphc-fuzz-frontend: --shape input1=Bx2 --expect-error --limit 10
-- String concatenation has no size limit: 40 doublings ask for 1 TiB. Expected: a located
-- error at the `..`; got graphc: internal error: MemoryError (under a 3 GiB limit; without
-- one the machine's memory runs out).
local s = "x"
for i = 1, 40 do s = s .. s end
local x = nn.Identity()()
return nn.gModule({x}, {nn.Tanh()(x)})
