/*  can_frame.h - the one CAN frame type shared by the protocol codec, the slcan codec and
    the transports. Plain data: no flag bits in the identifier (unlike SocketCAN's
    CAN_EFF_FLAG), the extended/RTR properties are separate fields.
*/
#ifndef CAN_FRAME_H_INCLUDED
#define CAN_FRAME_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#define CAN_FRAME_STD_MAX 0x7FFu      /* largest 11-bit identifier */
#define CAN_FRAME_EXT_MAX 0x1FFFFFFFu /* largest 29-bit identifier */

typedef struct {
    uint32_t id;     /* 29-bit (ext) or 11-bit identifier, no flag bits */
    bool ext;        /* extended (29-bit) identifier */
    bool rtr;        /* remote transmission request (no data) */
    uint8_t dlc;     /* 0-8 */
    uint8_t data[8]; /* bytes beyond dlc are undefined */
} can_frame_t;

#endif
