"""DGL adapter."""
