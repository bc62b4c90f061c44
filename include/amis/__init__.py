"""GPU AMIs: what a build needs and decides, Packer's output, and which images to keep."""
