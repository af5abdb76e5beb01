"""Container networking: bridges, veth pairs, IPAM, nftables NAT and published ports, /etc/hosts.

Layout: `model` (what a network is), `ports` (published port specs), `ipam` (addresses),
`nft` (Berth's own nftables table, rendered whole and applied in one transaction), `hosts`
(/etc/hosts of attached containers), `state` (records under the data dir, one lock), `links`
and `netns` (the kernel side, through pyroute2 and berth.kernel), `manager` (the operations).
"""
