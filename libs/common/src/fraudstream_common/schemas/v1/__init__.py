"""Generated from proto/fraudstream/v1 by scripts/generate_proto.py: do not edit."""
