"""Lightning callbacks that turn a training run into figures, TensorBoard entries and files."""
