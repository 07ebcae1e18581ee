//! Operating the forwarder: attempt history, destination health, stored
//! pauses, redelivery by filter, Retry-After.
