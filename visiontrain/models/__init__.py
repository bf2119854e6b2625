"""Model builders (ResNet family, small CNN, pretrained backbones) behind one registry."""
