"""Training: the loop, the batch feed's training side, the teacher's precomputed outputs."""
