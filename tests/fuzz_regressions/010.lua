-- graphc-fuzz-frontend: --shape input1=Bx2 --expect-error --limit 10
-- unpack(t, i, j) builds all j - i + 1 values with no limit: unpack({}, 1, 2^31) runs for
-- minutes and ends in MemoryError (select('#', unpack(...)) and string.char(unpack(...))
-- alike). Expected: a located error ("too many results to unpack", as Lua says).
local t = {unpack({}, 1, 2^31)}
local x = nn.Identity()()
return nn.gModule({x}, {nn.Tanh()(x)})
