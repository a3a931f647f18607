"""``dockyard``: the admin command of dockyardd (Dockyard's ctr).

It talks only the admin protocol (dockyard.api.admin) on the daemon's admin
socket, and imports nothing else of Dockyard: main.py parses the command
line, client.py connects and turns gRPC errors into messages and exit
codes, images.py and runtime.py hold the verbs.
"""
