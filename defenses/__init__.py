"""Defenses, one module each; a module registers its class with @register_defense."""
