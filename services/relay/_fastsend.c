/* The relay's per-subscriber send loop in C: SRTP-protect a frame's RTP packets and write datagrams to a
 * UDP socket with one sendmmsg(2) call. Optional: services/relay/fast_send.py does the same in Python
 * when this module is not built (no compiler), and docs/decisions.md says why it exists.
 *
 * protect(function, session, packets) -> list[bytes]
 *     Each packet protected with libsrtp's srtp_protect, called through the function pointer and session
 *     (srtp_t) that pylibsrtp's own binding holds (passed as integers by fast_send.py, which checks the
 *     function's C type first). A packet is copied into an aligned buffer with room for the SRTP trailer,
 *     as pylibsrtp does.
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
    return PyModule_Create(&fastsend_module);
}
