"""Pod networking: network namespaces, CNI plugins, the pod's files, counters.

The public surface:

* ``netns.create(path)`` / ``netns.remove(path)`` / ``netns.is_netns(path)``
* ``cni.CNI(conf_dir, bin_dirs, cache_dir)``: ``status()``, ``setup()``,
  ``teardown()``, ``check()``, ``cached_result()``; ``cni.CNIResult``
* ``pod_files``: ``hosts_file()``, ``resolv_conf()``, ``hostname_file()``
* ``net_stats.net_stats(netns_path)``
"""
