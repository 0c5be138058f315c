"""The daemon's side of the HA cluster: the peer, its gossip channels, cluster metrics and the TLS config."""
