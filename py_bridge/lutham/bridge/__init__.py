"""What the TypeScript CLI imports through pythonia (entry.py) and the child's lifeline."""
