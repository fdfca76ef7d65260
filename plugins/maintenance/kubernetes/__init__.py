"""Kubernetes maintenance (procedures 5.1): pod clean-up, memory-pressure restarts, node
maintenance one node at a time, hygiene reports. Through the official ``kubernetes`` client."""
