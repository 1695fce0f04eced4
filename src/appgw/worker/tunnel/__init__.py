"""Tunnels after 101: how one ends, how its bytes move, the registry it joins."""
