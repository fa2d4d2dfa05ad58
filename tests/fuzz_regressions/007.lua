-- graphc-fuzz-frontend: --shape input1=Bx2 --expect-error --limit 15
-- Found by mutating samples/highway_lm.lua (for i = 1, 2 -> for i = 1, 2147483648).
-- The step limit (1e6 statements, "~4 s") is reached only after ~50 s (and ~1 GB) when each
-- iteration builds modules and nodes (the highway_lm mutation ran 279 s); expected: the
-- evaluation stops within seconds, as a plain empty loop does.
local x = nn.Identity()()
for i = 1, 2^31 do
  local h = nn.Tanh()(nn.Linear(2, 2)(x))
end
return nn.gModule({x}, {nn.Tanh()(x)})
