/* The relay's per-packet steps in C: the per-subscriber send loop (SRTP-protect a frame's RTP packets and
 * write datagrams to a UDP socket with one sendmmsg(2) call) and the first steps of a publisher's datagram
 * (SRTP unprotect, the RTP header parse). Optional: services/relay/fast_send.py and receive.py do the same
 * in Python when this module is not built (no compiler), and docs/decisions.md says why it exists.
 *
 * protect(function, session, packets) -> list[bytes]
 *     Each packet protected with libsrtp's srtp_protect, called through the function pointer and session
 *     (srtp_t) that pylibsrtp's own binding holds (passed as integers by fast_send.py, which checks the
 *     function's C type first). A packet is copied into an aligned buffer with room for the SRTP trailer,
 *     as pylibsrtp does.
 * unprotect(function, session, error, datagram) -> bytes
 *     One SRTP or SRTCP datagram unprotected with libsrtp's srtp_unprotect or srtp_unprotect_rtcp (the
 *     function passed, as for protect), as pylibsrtp's Session.unprotect does it: `error` (pylibsrtp's
 *     Error) raised where libsrtp refuses it (replayed, forged, damaged), ValueError where it is longer
 *     than pylibsrtp's buffer. Called once per datagram a publisher sends: the fast calling convention.
 * parse_rtp(packet_type, extensions, data, abs_send_time_id) -> (packet, abs_send_time | None)
 *     services/relay/receive.py's parse_rtp, the same checks and errors (ValueError, with the same
 *     messages): a `packet_type` (aiortc's RtpPacket) made without its __init__, its header fields, CSRCs,
 *     payload and padding size set, its `extensions` the shared empty set passed; abs-send-time read from
 *     the RFC 8285 element `abs_send_time_id` (None or 0: not looked for).
 * sendmmsg(fd, datagrams, addresses) -> int
 *     datagrams[i] to addresses[i] (a struct sockaddr as bytes, from sockaddr()), in as few sendmmsg
 *     calls as it takes; returns how many went out. It stops at the first one the kernel refuses
 *     (EAGAIN: the socket buffer is full; or an error) and leaves the rest and the error to the caller's
 *     ordinary path, the event loop's transport.
 * sockaddr(host, port) -> bytes
 *     The struct sockaddr_in or sockaddr_in6 of an IP address literal.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* pylibsrtp's limits: a 1500-byte buffer, of which the trailer may take up to 16 + 128 bytes. */
#define SRTP_BUFFER 1500
#define SRTP_MAX_TRAILER_LEN (16 + 128)
/* Datagrams per sendmmsg call (the kernel's UIO_MAXIOV caps vlen at 1024). */
#define BATCH 64

typedef int (*srtp_protect_fn)(void *session, void *packet, int *length);
/* srtp_unprotect and srtp_unprotect_rtcp have the same type. */
typedef srtp_protect_fn srtp_unprotect_fn;

static PyObject *
fastsend_protect(PyObject *module, PyObject *args)
{
    unsigned long long function_address, session_address;
    PyObject *packets;
    if (!PyArg_ParseTuple(args, "KKO!", &function_address, &session_address, &PyList_Type, &packets))
        return NULL;
    srtp_protect_fn protect = (srtp_protect_fn)(uintptr_t)function_address;
    void *session = (void *)(uintptr_t)session_address;
    Py_ssize_t count = PyList_GET_SIZE(packets);
    PyObject *protected = PyList_New(count);
    if (protected == NULL)
        return NULL;
    /* libsrtp wants the packet 32-bit aligned; the GIL is held throughout, so one buffer serves all. */
    static _Alignas(16) unsigned char buffer[SRTP_BUFFER];
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *packet = PyList_GET_ITEM(packets, index);
        if (!PyBytes_Check(packet)) {
            PyErr_SetString(PyExc_TypeError, "packet must be bytes");
            goto fail;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(packet);
        if (size > SRTP_BUFFER - SRTP_MAX_TRAILER_LEN) {
            PyErr_SetString(PyExc_ValueError, "packet is too long");
            goto fail;
        }
        memcpy(buffer, PyBytes_AS_STRING(packet), size);
        int length = (int)size;
        int status = protect(session, buffer, &length);
        if (status != 0) {
            PyErr_Format(PyExc_RuntimeError, "srtp_protect failed with status %d", status);
            goto fail;
        }
        PyObject *datagram = PyBytes_FromStringAndSize((const char *)buffer, length);
        if (datagram == NULL)
            goto fail;
        PyList_SET_ITEM(protected, index, datagram);
    }
    return protected;
fail:
    Py_DECREF(protected);
    return NULL;
}

static PyObject *
fastsend_unprotect(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "unprotect(function, session, error, datagram)");
        return NULL;
    }
    srtp_unprotect_fn unprotect = (srtp_unprotect_fn)(uintptr_t)PyLong_AsUnsignedLongLong(args[0]);
    void *session = (void *)(uintptr_t)PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *error = args[2], *datagram = args[3];
    if (!PyBytes_Check(datagram)) {
        PyErr_SetString(PyExc_TypeError, "packet must be bytes");
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(datagram);
    if (size > SRTP_BUFFER) {
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return NULL;
    }
    static _Alignas(16) unsigned char buffer[SRTP_BUFFER];
    memcpy(buffer, PyBytes_AS_STRING(datagram), size);
    int length = (int)size;
    int status = unprotect(session, buffer, &length);
    if (status != 0) {
        PyErr_Format(error, "srtp_unprotect failed with status %d", status);
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buffer, length);
}

/* Attribute names of aiortc's RtpPacket, interned once. */
static PyObject *name_version, *name_marker, *name_payload_type, *name_sequence_number, *name_timestamp,
    *name_ssrc, *name_csrc, *name_extensions, *name_padding_size, *name_payload;
static PyObject *empty_tuple;

#define ONE_BYTE_PROFILE 0xBEDE
#define TWO_BYTE_PROFILE 0x1000

static uint16_t
read16(const unsigned char *at)
{
    return (uint16_t)(at[0] << 8 | at[1]);
}

static uint32_t
read32(const unsigned char *at)
{
    return (uint32_t)at[0] << 24 | (uint32_t)at[1] << 16 | (uint32_t)at[2] << 8 | at[3];
}

/* The abs-send-time element between position and end: 1 and its value in *found, 0 if absent, -1 with
 * ValueError set where an element is truncated (receive.py's _find_abs_send_time). */
static int
find_abs_send_time(const unsigned char *data, Py_ssize_t position, Py_ssize_t end, unsigned profile,
                   long wanted, long *found)
{
    if (profile == ONE_BYTE_PROFILE) {
        while (position < end) {
            unsigned byte = data[position];
            if (!byte) {
                position++;
                continue;
            }
            Py_ssize_t size = (byte & 0x0F) + 1;
            position++;
            if (position + size > end) {
                PyErr_SetString(PyExc_ValueError, "RTP one-byte header extension value is truncated");
                return -1;
            }
            if ((long)(byte >> 4) == wanted && size == 3) {
                *found = (long)(data[position] << 16 | data[position + 1] << 8 | data[position + 2]);
                return 1;
            }
            position += size;
        }
    } else if (profile == TWO_BYTE_PROFILE) {
        while (position < end) {
            if (!data[position]) {
                position++;
                continue;
            }
            if (position + 2 > end) {
                PyErr_SetString(PyExc_ValueError, "RTP two-byte header extension is truncated");
                return -1;
            }
            long element_id = data[position];
            Py_ssize_t size = data[position + 1];
            position += 2;
            if (position + size > end) {
                PyErr_SetString(PyExc_ValueError, "RTP two-byte header extension value is truncated");
                return -1;
            }
            if (element_id == wanted && size == 3) {
                *found = (long)(data[position] << 16 | data[position + 1] << 8 | data[position + 2]);
                return 1;
            }
            position += size;
        }
    }
    return 0;
}

/* Steals `value`; 0, or -1 with an exception set. */
static int
set_field(PyObject *packet, PyObject *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int result = PyObject_SetAttr(packet, name, value);
    Py_DECREF(value);
    return result;
}

static PyObject *
fastsend_parse_rtp(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "parse_rtp(packet_type, extensions, data, abs_send_time_id)");
        return NULL;
    }
    PyObject *packet_type = args[0], *extensions = args[1], *bytes = args[2];
    if (!PyType_Check(packet_type) || !PyBytes_Check(bytes)) {
        PyErr_SetString(PyExc_TypeError, "parse_rtp takes a type and bytes");
        return NULL;
    }
    long wanted = 0;
    if (args[3] != Py_None) {
        wanted = PyLong_AsLong(args[3]);
        if (wanted == -1 && PyErr_Occurred())
            return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(bytes);
    Py_ssize_t length = PyBytes_GET_SIZE(bytes);
    if (length < 12) {
        PyErr_SetString(PyExc_ValueError, "RTP packet length is less than 12 bytes");
        return NULL;
    }
    unsigned first = data[0], marker_type = data[1];
    if (first >> 6 != 2) {
        PyErr_SetString(PyExc_ValueError, "RTP packet has invalid version");
        return NULL;
    }
    Py_ssize_t csrc_count = first & 0x0F;
    Py_ssize_t position = 12 + 4 * csrc_count;
    if (length < position) {
        PyErr_SetString(PyExc_ValueError, "RTP packet has truncated CSRC");
        return NULL;
    }
    long abs_send_time = 0;
    int has_abs_send_time = 0;
    if (first & 0x10) {
        if (length < position + 4) {
            PyErr_SetString(PyExc_ValueError, "RTP packet has truncated extension profile / length");
            return NULL;
        }
        unsigned profile = read16(data + position);
        Py_ssize_t end = position + 4 + 4 * (Py_ssize_t)read16(data + position + 2);
        position += 4;
        if (length < end) {
            PyErr_SetString(PyExc_ValueError, "RTP packet has truncated extension value");
            return NULL;
        }
        if (wanted) {
            has_abs_send_time = find_abs_send_time(data, position, end, profile, wanted, &abs_send_time);
            if (has_abs_send_time < 0)
                return NULL;
        }
        position = end;
    }
    Py_ssize_t payload_end = length, padding = 0;
    if (first & 0x20) {
        padding = data[length - 1];
        if (!padding || padding > length - position) {
            PyErr_SetString(PyExc_ValueError, "RTP packet padding length is invalid");
            return NULL;
        }
        payload_end = length - padding;
    }
    PyObject *packet = ((PyTypeObject *)packet_type)->tp_new((PyTypeObject *)packet_type, empty_tuple, NULL);
    if (packet == NULL)
        return NULL;
    PyObject *csrc = PyList_New(csrc_count);
    if (csrc == NULL)
        goto fail;
    for (Py_ssize_t index = 0; index < csrc_count; index++) {
        PyObject *source = PyLong_FromUnsignedLong(read32(data + 12 + 4 * index));
        if (source == NULL) {
            Py_DECREF(csrc);
            goto fail;
        }
        PyList_SET_ITEM(csrc, index, source);
    }
    Py_INCREF(extensions);
    if (set_field(packet, name_version, PyLong_FromLong(2)) < 0
        || set_field(packet, name_marker, PyLong_FromLong(marker_type >> 7)) < 0
        || set_field(packet, name_payload_type, PyLong_FromLong(marker_type & 0x7F)) < 0
        || set_field(packet, name_sequence_number, PyLong_FromLong(read16(data + 2))) < 0
        || set_field(packet, name_timestamp, PyLong_FromUnsignedLong(read32(data + 4))) < 0
        || set_field(packet, name_ssrc, PyLong_FromUnsignedLong(read32(data + 8))) < 0
        || set_field(packet, name_csrc, csrc) < 0
        || set_field(packet, name_extensions, extensions) < 0
        || set_field(packet, name_padding_size, PyLong_FromSsize_t(padding)) < 0
        || set_field(packet,
                     name_payload,
                     PyBytes_FromStringAndSize((const char *)data + position, payload_end - position)) < 0)
        goto fail;
    PyObject *send_time = has_abs_send_time ? PyLong_FromLong(abs_send_time) : Py_NewRef(Py_None);
    if (send_time == NULL)
        goto fail;
    PyObject *parsed = PyTuple_New(2);
    if (parsed == NULL) {
        Py_DECREF(send_time);
        goto fail;
    }
    PyTuple_SET_ITEM(parsed, 0, packet);
    PyTuple_SET_ITEM(parsed, 1, send_time);
    return parsed;
fail:
    Py_DECREF(packet);
    return NULL;
}

static PyObject *
fastsend_sendmmsg(PyObject *module, PyObject *args)
{
    int fd;
    PyObject *datagrams, *addresses;
    if (!PyArg_ParseTuple(args, "iO!O!", &fd, &PyList_Type, &datagrams, &PyList_Type, &addresses))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(datagrams);
    if (PyList_GET_SIZE(addresses) != count) {
        PyErr_SetString(PyExc_ValueError, "one address per datagram");
        return NULL;
    }
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    Py_ssize_t sent = 0;
    while (sent < count) {
        int batch = (int)(count - sent < BATCH ? count - sent : BATCH);
        for (int index = 0; index < batch; index++) {
            PyObject *datagram = PyList_GET_ITEM(datagrams, sent + index);
            PyObject *address = PyList_GET_ITEM(addresses, sent + index);
            if (!PyBytes_Check(datagram) || !PyBytes_Check(address)) {
                PyErr_SetString(PyExc_TypeError, "datagrams and addresses must be bytes");
                return NULL;
            }
            vectors[index].iov_base = PyBytes_AS_STRING(datagram);
            vectors[index].iov_len = (size_t)PyBytes_GET_SIZE(datagram);
            memset(&messages[index], 0, sizeof(messages[index]));
            messages[index].msg_hdr.msg_name = PyBytes_AS_STRING(address);
            messages[index].msg_hdr.msg_namelen = (socklen_t)PyBytes_GET_SIZE(address);
            messages[index].msg_hdr.msg_iov = &vectors[index];
            messages[index].msg_hdr.msg_iovlen = 1;
        }
        int done;
        do {
            done = sendmmsg(fd, messages, (unsigned int)batch, MSG_DONTWAIT);
        } while (done < 0 && errno == EINTR);
        if (done <= 0)
            break;
        sent += done;
        if (done < batch)
            break;
    }
    return PyLong_FromSsize_t(sent);
}

static PyObject *
fastsend_sockaddr(PyObject *module, PyObject *args)
{
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "si", &host, &port))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return NULL;
    }
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof(v4));
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons((uint16_t)port);
        return PyBytes_FromStringAndSize((const char *)&v4, sizeof(v4));
    }
    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof(v6));
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons((uint16_t)port);
        return PyBytes_FromStringAndSize((const char *)&v6, sizeof(v6));
    }
    PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
    return NULL;
}

static PyMethodDef fastsend_methods[] = {
    {"protect", fastsend_protect, METH_VARARGS, "SRTP-protect a list of RTP packets."},
    {"unprotect", (PyCFunction)(void (*)(void))fastsend_unprotect, METH_FASTCALL,
     "SRTP-unprotect one datagram; raises `error` where libsrtp refuses it."},
    {"parse_rtp", (PyCFunction)(void (*)(void))fastsend_parse_rtp, METH_FASTCALL,
     "An RTP packet's header fields and abs-send-time, as services/relay/receive.py's parse_rtp."},
    {"sendmmsg", fastsend_sendmmsg, METH_VARARGS, "Send datagrams with sendmmsg(2); returns how many went."},
    {"sockaddr", fastsend_sockaddr, METH_VARARGS, "The struct sockaddr of an IP address and port."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastsend_module = {
    PyModuleDef_HEAD_INIT, "_fastsend", NULL, -1, fastsend_methods,
};

PyMODINIT_FUNC
PyInit__fastsend(void)
{
    struct {
        PyObject **name;
        const char *text;
    } names[] = {
        {&name_version, "version"},
        {&name_marker, "marker"},
        {&name_payload_type, "payload_type"},
        {&name_sequence_number, "sequence_number"},
        {&name_timestamp, "timestamp"},
        {&name_ssrc, "ssrc"},
        {&name_csrc, "csrc"},
        {&name_extensions, "extensions"},
        {&name_padding_size, "padding_size"},
        {&name_payload, "payload"},
    };
    for (size_t index = 0; index < sizeof(names) / sizeof(names[0]); index++) {
        if (*names[index].name == NULL && (*names[index].name = PyUnicode_InternFromString(names[index].text)) == NULL)
            return NULL;
    }
    if (empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    return PyModule_Create(&fastsend_module);
}
