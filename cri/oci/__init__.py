"""Pure OCI spec generation for the CRI daemon: pod sandbox (pause)
container and workload container config.json from CRI messages and the
image config.  Entry points: :func:`dockyard.cri.oci.sandbox_spec.sandbox_spec`
and :func:`dockyard.cri.oci.container_spec.container_spec`."""
