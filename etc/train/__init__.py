"""Training: the loop over one run (teacher or a student under an ablation) and the teacher's outputs computed once."""
