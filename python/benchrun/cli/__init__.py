"""benchrun's command line interface."""
