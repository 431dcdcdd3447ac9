"""Constants shared by test files (importable because tests/ is on sys.path via pytest's pythonpath)."""

# Seconds-long runs: tiny fake data, a few batches, no progress bar.
FAST = [
    "dataset=fake",
    "dataset.size=96",
    "dataset.batch_size=16",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=3",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]
