-- graphc-fuzz-frontend: --shape input1=Bx3x8x8 --expect-error
-- Found probing constructors with odd arguments: nn.SpatialConvolution with nInputPlane 0: the init stdv
-- 1/sqrt(kW*kH*nInputPlane) raised ZeroDivisionError instead of a located error.
local x = nn.Identity()()
return nn.gModule({x}, {nn.SpatialConvolution(0, 1, 1, 1)(x)})
