"""Fine-tuning: dataset preparation, LoRA training, evaluation and the adapter registry."""
