#ifndef SVCPLANE_CPCAP_SHIM_H
#define SVCPLANE_CPCAP_SHIM_H
#include <pcap/pcap.h>
#include <stdio.h>
#endif
