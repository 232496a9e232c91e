"""``mtv-gitops demo``: the whole path on the embedded default, from OVA files to status in git."""
