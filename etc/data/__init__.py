"""Datasets: specs by name, clips and frames, label maps, pairs with their flow, augmentation, the synthetic set."""
