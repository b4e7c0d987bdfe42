"""The blindpad client: the sans-I/O core and its front ends."""
