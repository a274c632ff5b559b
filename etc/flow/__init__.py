"""Optical flow: estimators, the HDF5 store, and the warping utilities losses and metrics share."""
