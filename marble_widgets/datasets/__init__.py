"""Bundled real recordings and seeded synthetic systems (the public ``marble_widgets.datasets`` namespace)."""
