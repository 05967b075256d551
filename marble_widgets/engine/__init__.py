"""MARBLE maths: graph, geometry, diffusion, derivative features, network, loss, training."""
