"""What is trained: the Flax networks, the objectives (one module each, one registry), the joint
parameter tree's layouts, the optimizer and the analytic FLOPs. No I/O, no loop."""
