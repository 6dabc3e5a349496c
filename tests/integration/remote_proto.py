"""A minimal protobuf wire codec for the bus messages the remote-delivery tests speak
(proto/postmesh.proto). Debian has no Python module generated from our .proto, and the
wire format is small: varints and length-delimited fields. test_remote_resolver.py checks
this codec against protoc-c's own --decode so it cannot drift silently.
"""

# field name -> (number, type); "T*" is repeated T; message types name a SCHEMA entry.
SCHEMA = {
    "BusMessage": {
        "version": (1, "uint"), "request_id": (2, "uint"),
        "credit": (12, "Credit"), "job": (13, "Job"), "job_result": (14, "JobResult"),
        "resolve": (17, "ResolveRequest"), "resolve_reply": (18, "ResolveReply"),
    },
    "Credit": {"kind": (1, "uint"), "credits": (2, "uint"), "worker_name": (3, "string")},
    "JobRecipient": {"index": (1, "uint"), "address": (2, "string"), "original": (3, "string")},
    "Job": {
        "job_id": (1, "uint"), "queue_id": (2, "string"), "kind": (3, "uint"), "sender": (4, "string"),
        "recipients": (5, "JobRecipient*"), "body": (6, "bytes"), "domain": (7, "string"),
        "lease_seconds": (8, "uint"), "arrival_time": (10, "uint"), "delay_notice": (11, "bool"),
        "requiretls": (16, "bool"),
    },
    "RecipientResult": {
        "index": (1, "uint"), "status": (2, "uint"), "dsn_status": (3, "string"), "text": (4, "string"),
        "remote_mta": (5, "string"),
    },
    "JobResult": {"job_id": (1, "uint"), "queue_id": (2, "string"), "results": (3, "RecipientResult*"),
                  "tls_sessions": (6, "TlsSession*")},
    "TlsSession": {
        "policy_domain": (1, "string"), "policy_type": (2, "uint"), "policy_strings": (3, "string*"),
        "mx_host": (4, "string*"), "success": (5, "bool"), "result_type": (6, "string"),
        "sending_ip": (7, "string"), "receiving_mx_hostname": (8, "string"), "receiving_ip": (9, "string"),
        "receiving_mx_helo": (10, "string"), "additional_info": (11, "string"),
        "failure_reason_code": (12, "string"), "rua": (13, "string*"),
    },
    "ResolveRequest": {"kind": (1, "uint"), "name": (2, "string")},
    "MxHost": {"name": (1, "string"), "preference": (2, "uint"), "addresses": (3, "string*"),
               "secure": (4, "bool")},
    "TlsaRecord": {"usage": (1, "uint"), "selector": (2, "uint"), "matching_type": (3, "uint"),
                   "data": (4, "bytes")},
    "ResolveReply": {
        "status": (1, "uint"), "dsn_status": (2, "string"), "text": (3, "string"), "hosts": (4, "MxHost*"),
        "names": (5, "string*"), "texts": (6, "string*"), "ttl": (7, "uint"), "dnssec": (8, "uint"),
        "tlsa": (9, "TlsaRecord*"),
    },
}

WORKER_MTA = 2
MX, PTR, A, TXT, TLSA = 0, 1, 2, 3, 4
INSECURE, SECURE, BOGUS = 0, 1, 2         # ResolveReply.dnssec (enum Dnssec)
OK, TEMPFAIL, PERMFAIL = 0, 1, 2          # ResolveReply.Status
DELIVERED = 0                             # RecipientResult.Status (TEMPFAIL/PERMFAIL as above)
RETURNED = 3                              # RecipientResult.Status: not attempted, dispatch again


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def encode(msgtype, values):
    out = bytearray()
    fields = SCHEMA[msgtype]
    for name, value in values.items():
        num, ftype = fields[name]
        items = value if ftype.endswith("*") else [value]
        base = ftype.rstrip("*")
        for v in items:
            if base in ("uint", "bool"):
                out += _varint(num << 3) + _varint(int(v))
            else:
                if base == "string":
                    data = v.encode()
                elif base == "bytes":
                    data = bytes(v)
                else:
                    data = encode(base, v)
                out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def decode(msgtype, buf):
    fields = SCHEMA[msgtype]
    bynum = {num: (name, ftype) for name, (num, ftype) in fields.items()}
    result = {}
    for name, (_, ftype) in fields.items():
        if ftype.endswith("*"):
            result[name] = []
        elif ftype in ("uint", "bool"):
            result[name] = 0
        elif ftype == "string":
            result[name] = ""
        elif ftype == "bytes":
            result[name] = b""
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            length, i = _read_varint(buf, i)
            value = bytes(buf[i:i + length])
            i += length
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"bad wire type {wire}")
        if num not in bynum:
            continue
        name, ftype = bynum[num]
        base = ftype.rstrip("*")
        if base == "string":
            value = value.decode()
        elif base not in ("uint", "bool", "bytes"):
            value = decode(base, value)
        if ftype.endswith("*"):
            result[name].append(value)
        else:
            result[name] = value
    return result


def bus(request_id=0, **body):
    """A BusMessage frame: bus(7, resolve={"kind": MX, "name": "x.test"})."""
    return encode("BusMessage", {"version": 1, "request_id": request_id, **body})


def unbus(frame):
    return decode("BusMessage", frame)
