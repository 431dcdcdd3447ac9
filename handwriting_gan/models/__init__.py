"""Generator and discriminator networks, and the file format of a trained generator."""
