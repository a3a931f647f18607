"""dockyardd: the CRI v1 daemon (RuntimeService and ImageService). Built in a later issue."""
