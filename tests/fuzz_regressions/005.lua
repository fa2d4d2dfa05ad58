-- graphc-fuzz-frontend: --shape input1=Bx3x8x8 --expect-error
-- Found probing constructors with odd arguments: nn.SpatialFullConvolution with nInputPlane 0 raised
-- ZeroDivisionError in its init instead of a located error.
local x = nn.Identity()()
return nn.gModule({x}, {nn.SpatialFullConvolution(0, 1, 1, 1)(x)})
