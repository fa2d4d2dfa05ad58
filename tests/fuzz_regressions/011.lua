-- graphc-fuzz-frontend: --shape input1=Bx2 --expect-error --limit 30
-- pcall catches the step limit, though lua.py means it not to be catchable: pcall checks
-- for "evaluation stopped after" but the message says "evaluation stopped here after". So this
-- spec compiles (exit 0) after burning 1e6 steps, and with a statement after the pcall the
-- error is reported at that statement instead of at the loop. Expected: the located
-- "too many steps" error at the loop.
local x = nn.Identity()()
return nn.gModule({x}, {nn.Tanh()(x)}), pcall(function() while true do end end)
