"""Errors of call apps, signatures, device licences, registration and device calls.

Seed documents (in `../shared/seeds/`): 000 = IoT Video "WeChat mini-program VoIP" v2 API, 001 = the same
module's v1 API, 002 = mPaaS MRTC user guide. "000 call" is the return table of doWxCloudVoipCallV2,
"000 init" that of initWxCloudVoipV2 (001 initWxCloudVoip has the same), "001 register" that of
registerAvtVoip; "002 6.3.4, 4" is section 6.3.4 for the code and section 4 for the signed field.

| code    | reason                 | meaning                                             | source           |
| ------- | ---------------------- | --------------------------------------------------- | ---------------- |
| -102    | SIGNATURE_MALFORMED    | not Base64, wrong length, bad padding, other key    | 002 6.3.4, 6.3.2 |
| -102    | SIGNATURE_WRONG_APP    | signed for another bizName + appId + workspaceId    | 002 6.3.4, 4     |
| -102    | SIGNATURE_WRONG_UID    | signed for another uid                              | 002 6.3.4, 4     |
| -102    | SIGNATURE_EXPIRED      | expireTime is not in the future                     | 002 6.3.4, 4     |
| -102    | SIGNATURE_UNKNOWN_APP  | no app has this bizName                             | 002 6.3.4        |
| -2      | DEVICE_ID_INVALID      | the device is unknown or not registered             | 000 call         |
| -7      | OPEN_ID_MALFORMED      | open_id is empty or not of the accepted form        | 000 call         |
| -8      | OPEN_ID_NOT_AUTHORISED | the user revoked or refused the device (status 0)   | 000 call         |
| -9      | OPEN_ID_NOT_BOUND      | the user never authorised the device                | 000 call         |
| -15     | ACCOUNT_IN_ARREARS     | the app's account is in arrears                     | 000 call         |
| -17     | MODEL_ID_MISMATCH      | the device calls with a model_id not its licence's  | 000 call         |
| -19     | OPEN_ID_WRONG_APP      | the open_id belongs to another app                  | 000 call         |
| -20     | OPEN_ID_UNKNOWN        | well-formed open_id that no user of Parley has      | 000 call         |
| -10008  | SN_TICKET_UNKNOWN      | no such snTicket                                    | 001 register     |
| -10008  | SN_TICKET_EXPIRED      | the snTicket is older than 5 minutes                | 001 register     |
| -10008  | SN_TICKET_USED         | the snTicket was already used                       | 001 register     |
| -10008  | SN_TICKET_FOREIGN      | the snTicket was issued for another device          | 001 register     |
| 9800001 | SN_TOO_LONG            | sn longer than 128 bytes                            | 000 init         |
| 9800002 | SN_ILLEGAL_CHARACTERS  | illegal characters, or not <ProductId>_<DeviceName> | 000 init         |
| 9800003 | MODEL_ID_INVALID       | model_id check failed                               | 000 init         |
| 9800101 | LICENCE_POOL_EXHAUSTED | no licence of this type left for the product        | Parley           |
| 9800102 | DEVICE_NOT_ACTIVATED   | the device has no activated licence                 | Parley           |
| 9800103 | UID_INVALID            | uid is not 1-128 letters, digits or underscores     | Parley; 002 4    |
| 9800104 | PRIVATE_KEY_UNREADABLE | a stored app key does not open with the master key  | Parley           |
| 9800105 | DEVICE_UNAUTHENTICATED | unregistered device, or not its device secret       | Parley           |
| 9800106 | APP_NOT_FOUND          | no app has this bizName                             | Parley           |
| 9800107 | ACTIVATION_CONFLICT    | already activated with another app, model or type   | Parley           |

SIGNATURE_WRONG_APP, which the gateway raises as well, is in `services.core.shared_errors`.

Several reasons share one seed code: the seed's clients react to the code, Parley's operators and the
`verify` call need to know which check failed, and the reason carries that.

Parley's own codes are 98001xx: next to the seed's device codes 98000xx, which they extend, and far from
any code the seeds use. Call codes the seeds define for situations Parley does not have are left out:
-1 (groupId) and -4 (face payment) belong to the campus scenario, -3, -13 and -14 (voip_id / voipToken)
to WeChat's call tokens, -5 (creating the room) to the room manager, -12 to WeChat's mini-program review.
"""

from __future__ import annotations

import grpc

from services.core.errors import ErrorKind

_Status = grpc.StatusCode

# 002 section 6.3.4 (Web API error codes, "建立通话相关错误码"): -102/1004 "信令连接初始化错误"; section 6.3.2
# Connect answers a bad `sign` with OnConnectFailed(-102 "初始化失败"). The seed has no finer code for a
# signature, so every signature failure is -102 and the reason says which check failed.
SIGNATURE_MALFORMED = ErrorKind(
    -102,
    "SIGNATURE_MALFORMED",
    _Status.UNAUTHENTICATED,
    "the signature is damaged or was not made with this app's private key",
)
# 002 section 4: the uid follows the app's fields in the plaintext.
SIGNATURE_WRONG_UID = ErrorKind(
    -102, "SIGNATURE_WRONG_UID", _Status.UNAUTHENTICATED, "the signature was made for another uid"
)
# 002 section 4: expireTime ("签名生效截止时间") ends the signature's validity.
SIGNATURE_EXPIRED = ErrorKind(-102, "SIGNATURE_EXPIRED", _Status.UNAUTHENTICATED, "the signature has expired")
# Verifying for a bizName no app has is a failed signature to the client that presented it, so it is -102
# like the others; operator calls about an unknown app (issuing a signature) get APP_NOT_FOUND instead.
SIGNATURE_UNKNOWN_APP = ErrorKind(
    -102, "SIGNATURE_UNKNOWN_APP", _Status.UNAUTHENTICATED, "no app has this bizName"
)

# 000 doWxCloudVoipCallV2 return values.
DEVICE_ID_INVALID = ErrorKind(-2, "DEVICE_ID_INVALID", _Status.NOT_FOUND, "unknown or unregistered device")
OPEN_ID_MALFORMED = ErrorKind(-7, "OPEN_ID_MALFORMED", _Status.INVALID_ARGUMENT, "malformed open_id")
# 000 -8 "openId 未授权" and -9 "openId 未绑定设备": Parley reads -8 as an authorisation whose status is 0
# (onUpdateAuthorizeStatus: "0未授权订阅") and -9 as no authorisation record between user and device at all.
OPEN_ID_NOT_AUTHORISED = ErrorKind(
    -8, "OPEN_ID_NOT_AUTHORISED", _Status.PERMISSION_DENIED, "the user has not authorised this device"
)
OPEN_ID_NOT_BOUND = ErrorKind(
    -9, "OPEN_ID_NOT_BOUND", _Status.PERMISSION_DENIED, "the user is not bound to this device"
)
# 000 -15 "音视频费用包欠费"; Parley learns it from billing's account status events.
ACCOUNT_IN_ARREARS = ErrorKind(
    -15, "ACCOUNT_IN_ARREARS", _Status.FAILED_PRECONDITION, "the app's account is in arrears"
)
# 000 -17 "voipToken 对应 modelId 错误": the model a device calls with is not the one it is licensed for.
MODEL_ID_MISMATCH = ErrorKind(
    -17, "MODEL_ID_MISMATCH", _Status.PERMISSION_DENIED, "the device's model_id does not match its licence"
)
# 000 -19 "openId 与小程序 appId 不匹配".
OPEN_ID_WRONG_APP = ErrorKind(
    -19, "OPEN_ID_WRONG_APP", _Status.PERMISSION_DENIED, "the open_id belongs to another app"
)
# 000 -20 "openId 无效".
OPEN_ID_UNKNOWN = ErrorKind(-20, "OPEN_ID_UNKNOWN", _Status.NOT_FOUND, "unknown open_id")

# 001 registerAvtVoip: -10008 "snticket 有问题, 常见原因是 snticket 过期"; the ticket is valid 5 minutes.
# The ticket is a credential, hence UNAUTHENTICATED.
SN_TICKET_UNKNOWN = ErrorKind(-10008, "SN_TICKET_UNKNOWN", _Status.UNAUTHENTICATED, "unknown snTicket")
SN_TICKET_EXPIRED = ErrorKind(
    -10008, "SN_TICKET_EXPIRED", _Status.UNAUTHENTICATED, "the snTicket has expired"
)
SN_TICKET_USED = ErrorKind(-10008, "SN_TICKET_USED", _Status.UNAUTHENTICATED, "the snTicket was already used")
SN_TICKET_FOREIGN = ErrorKind(
    -10008, "SN_TICKET_FOREIGN", _Status.UNAUTHENTICATED, "the snTicket was issued for another device"
)

# 000 initWxCloudVoipV2 (and 001 initWxCloudVoip) return values.
SN_TOO_LONG = ErrorKind(9800001, "SN_TOO_LONG", _Status.INVALID_ARGUMENT, "sn is longer than 128 bytes")
SN_ILLEGAL_CHARACTERS = ErrorKind(
    9800002, "SN_ILLEGAL_CHARACTERS", _Status.INVALID_ARGUMENT, "sn contains illegal characters"
)
MODEL_ID_INVALID = ErrorKind(9800003, "MODEL_ID_INVALID", _Status.INVALID_ARGUMENT, "model_id check failed")

# Parley's own codes (see the table above). 000 gives no code of its own for these two: its v2 call table
# adds to -15 "请购买激活码, 并正确分配到对应的产品中" (buy activation codes and assign them to the product),
# and its usage notes say an unactivated device gets "-9或其他错误码". Parley separates them from arrears
# and from authorisation so the device maker sees the real cause, at activation rather than at call time.
LICENCE_POOL_EXHAUSTED = ErrorKind(
    9800101, "LICENCE_POOL_EXHAUSTED", _Status.RESOURCE_EXHAUSTED, "no licence left for this product"
)
DEVICE_NOT_ACTIVATED = ErrorKind(
    9800102, "DEVICE_NOT_ACTIVATED", _Status.FAILED_PRECONDITION, "the device is not activated"
)
UID_INVALID = ErrorKind(
    9800103,
    "UID_INVALID",
    _Status.INVALID_ARGUMENT,
    "uid must be 1 to 128 English letters, digits or underscores",
)
PRIVATE_KEY_UNREADABLE = ErrorKind(
    9800104,
    "PRIVATE_KEY_UNREADABLE",
    _Status.INTERNAL,
    "the app's private key cannot be decrypted with the configured master key",
)
# A device proves who it is with the secret registration gave it; an unknown sn and a wrong secret get the
# same answer so that the answer does not tell which sns are registered.
DEVICE_UNAUTHENTICATED = ErrorKind(
    9800105,
    "DEVICE_UNAUTHENTICATED",
    _Status.UNAUTHENTICATED,
    "the device is not registered or its device secret is wrong",
)
APP_NOT_FOUND = ErrorKind(9800106, "APP_NOT_FOUND", _Status.NOT_FOUND, "no app has this bizName")
# Activation is idempotent only for the same request: a device already holding a licence of another app,
# product or type keeps it, and the caller learns that its request was not what happened.
ACTIVATION_CONFLICT = ErrorKind(
    9800107,
    "ACTIVATION_CONFLICT",
    _Status.ALREADY_EXISTS,
    "the device is already activated with another app, model_id or licence type",
)
