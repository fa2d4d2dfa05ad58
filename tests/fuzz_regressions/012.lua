-- graphc-fuzz-frontend: --shape input1=Bx4x3 --expect-error --max-message 4000
-- The "k of the n outputs of split(n) are not used" error lists every unused output: for
-- split(20000) the message is ~130 KB (split(200000): 1.4 MB; found mutating caption_lstm.lua:
-- :split(4) -> :split(100000)). Expected: a capped list.
local x = nn.Identity()()
local a, b = nn.SplitTable(2)(x):split(20000)
return nn.gModule({x}, {a})
