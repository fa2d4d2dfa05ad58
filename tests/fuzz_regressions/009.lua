-- graphc-fuzz-frontend: --shape input1=Bx2 --expect-error --limit 10
-- string.rep has no size limit: string.rep("x", 2^40) gives graphc: internal error:
-- MemoryError (and string.rep("x", 1e10) would take 10 GB where that much is free).
-- Expected: a located error at the call.
local s = string.rep("x", 2^40)
local x = nn.Identity()()
return nn.gModule({x}, {nn.Tanh()(x)})
