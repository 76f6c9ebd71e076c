"""Bundles: manifest format, recipe builds, the on-disk store with an atomically swapped pointer."""
