"""What ships: the lock files, the wheel and a fresh project from it, the images."""
