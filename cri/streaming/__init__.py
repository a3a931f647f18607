"""dockyardd's streaming server: Exec, Attach and PortForward over SPDY/3.1 and WebSocket.

The CRI's Exec/Attach/PortForward RPCs return a URL on this server carrying a
single-use token; kubelet (or crictl) then upgrades an HTTP request on that URL
to SPDY/3.1 or WebSocket and speaks Kubernetes' remotecommand or portforward
subprotocol.  Pure protocol modules (spdy, remotecommand, portforward,
websocket, httpupgrade, tokens, requests) hold no I/O; server.py is the asyncio
edge and backend.py the interface the daemon implements.
"""
