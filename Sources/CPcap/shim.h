#ifndef SVCPLANE_CPCAP_SHIM_H
#define SVCPLANE_CPCAP_SHIM_H
#include <pcap/pcap.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __linux__
/* fallocate(2), with which the capture writer reserves a file's space: <fcntl.h> declares it only with
   _GNU_SOURCE, which the Swift Glibc module is built without. */
int fallocate(int fd, int mode, off_t offset, off_t length);
#endif
#endif
