"""dockyardd: the CRI v1 daemon (RuntimeService and ImageService); cri/daemon.py starts it."""
