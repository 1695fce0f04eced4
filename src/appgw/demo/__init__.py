"""`appgw demo`: the gateway in front of bundled sample backends.

backends.py is the sample app (two instances show the balancing), chat.py a
WebSocket chat with its page (static/chat.html), runner.py starts them and
the gateway and stops everything on Ctrl-C.
"""
