"""FSE-DP itself: shard plans, virtual rings and trajectories, flow control (R4), the lightweight scheduler."""
