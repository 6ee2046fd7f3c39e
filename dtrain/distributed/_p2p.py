"""Point-to-point: send, recv, isend, irecv and batch_isend_irecv, with the same deadlines as collectives."""
from .distributed_c10d import _check_tensor, _contig, _group_rank, _inout, _pg, _run


def _p2p_peer(pg, rank, group_rank, what):
    if group_rank is not None:
        return group_rank
    if rank is None:
        return None
    peer = _group_rank(pg, rank, "Global")
    if peer == pg.rank():
        raise ValueError(f"Invalid {what} rank: {rank}; a rank cannot {what} itself")
    return peer


def isend(tensor, dst=None, group=None, tag=0, group_dst=None):
    """Start sending `tensor` to global rank `dst`; returns a Work."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    peer = _p2p_peer(pg, dst, group_dst, "send to")
    src = _contig(tensor._data)
    return _run(pg, "send", tensor, lambda b: b.send(src, peer, tag), True, peer=pg._ranks[peer])


def irecv(tensor, src=None, group=None, tag=0, group_src=None):
    """Start receiving into `tensor` from global rank `src` (None: any); returns a Work."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    peer = _p2p_peer(pg, src, group_src, "receive from")
    arr, back = _inout(tensor)
    return _run(pg, "recv", tensor, lambda b: b.recv(arr, peer, tag), True, finish=back, result=[tensor],
                peer="any" if peer is None else pg._ranks[peer])


def send(tensor, dst=None, group=None, tag=0, group_dst=None) -> None:
    """Send `tensor` to global rank `dst`, returning once the buffer may be reused."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    peer = _p2p_peer(pg, dst, group_dst, "send to")
    src = _contig(tensor._data)
    _run(pg, "send", tensor, lambda b: b.send(src, peer, tag), False, peer=pg._ranks[peer])


def recv(tensor, src=None, group=None, tag=0, group_src=None) -> int:
    """Receive into `tensor` from global rank `src` (None: any rank); returns the sender's global rank."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return -1
    peer = _p2p_peer(pg, src, group_src, "receive from")
    arr, back = _inout(tensor)
    req = _run(pg, "recv", tensor, lambda b: b.recv(arr, peer, tag), False, finish=back,
               peer="any" if peer is None else pg._ranks[peer])
    return pg._ranks[req.source] if req.source is not None else pg._ranks[peer]


class P2POp:
    """One point-to-point operation for batch_isend_irecv: `op` is isend or irecv."""

    def __init__(self, op, tensor, peer=None, group=None, tag=0, group_peer=None):
        if op not in (isend, irecv):
            raise ValueError("Invalid ``op``. Expected ``op`` to be of type ``torch.distributed.isend`` or "
                             "``torch.distributed.irecv``.")
        self.op, self.tensor, self.peer, self.group, self.tag, self.group_peer = op, tensor, peer, group, tag, group_peer

    def __repr__(self):
        return f"P2POp({self.op.__name__}, peer={self.peer}, shape={list(self.tensor.shape)})"


def batch_isend_irecv(p2p_op_list) -> list:
    """Start every operation of the list; returns their Works (all are posted before any is waited on)."""
    if not p2p_op_list or not all(isinstance(p, P2POp) for p in p2p_op_list):
        raise ValueError("Invalid ``p2p_op_list``. Each op is expected to to be of type "
                         "``torch.distributed.P2POp``.")
    works = []
    for p in p2p_op_list:
        kw = {"group_dst": p.group_peer} if p.op is isend else {"group_src": p.group_peer}
        works.append(p.op(p.tensor, p.peer, group=p.group, tag=p.tag, **kw))
    return works
