// loop_setup_bench.c: setup + teardown of a run's disk-limit filesystem (docs/performance.md, "The
// disk limit"): copy the template's data extents, LOOP_CONFIGURE buffered vs direct I/O, fsmount,
// mkdirat upper/work, close. Root only. cc -O2 -o loop_setup_bench loop_setup_bench.c &&
// ./loop_setup_bench <store>/scratch/ext4-<size>.img <dir on the store's filesystem> <rounds>
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static void copy(const char*src,int dst,off_t size){int s=open(src,O_RDONLY);ftruncate(dst,size);off_t pos=0;for(;;){off_t d=lseek(s,pos,SEEK_DATA);if(d<0)break;off_t h=lseek(s,d,SEEK_HOLE);off_t i=d,o=d;while(i<h){ssize_t n=copy_file_range(s,&i,dst,&o,h-i,0);if(n<=0)break;}pos=h;}close(s);}
int main(int argc,char**argv){const char*tpl=argv[1];const char*dir=argv[2];int rounds=atoi(argv[3]);
 double tot[2]={0,0};int ctl=open("/dev/loop-control",O_RDWR);
 for(int r=0;r<rounds;r++)for(int dio=0;dio<2;dio++){
  double t0=now();char p[256];snprintf(p,sizeof p,"%s/img%d",dir,dio);int f=open(p,O_RDWR|O_CREAT|O_TRUNC,0600);copy(tpl,f,10LL<<30);
  int n=ioctl(ctl,LOOP_CTL_GET_FREE);char dev[64];snprintf(dev,64,"/dev/loop%d",n);int l=open(dev,O_RDWR);
  struct loop_config c;memset(&c,0,sizeof c);c.fd=f;c.block_size=4096;c.info.lo_flags=LO_FLAGS_AUTOCLEAR|(dio?LO_FLAGS_DIRECT_IO:0);
  if(ioctl(l,LOOP_CONFIGURE,&c)){perror("cfg");return 1;} unlink(p);
  int fs=fsopen("ext4",FSOPEN_CLOEXEC);fsconfig(fs,FSCONFIG_SET_STRING,"source",dev,0);fsconfig(fs,FSCONFIG_SET_FLAG,"noinit_itable",0,0);
  if(fsconfig(fs,FSCONFIG_CMD_CREATE,0,0,0)){perror("create");return 1;} int m=fsmount(fs,FSMOUNT_CLOEXEC,MOUNT_ATTR_NODEV);close(l);close(fs);
  mkdirat(m,"upper",0755);mkdirat(m,"work",0755);close(f);close(m);
  tot[dio]+=now()-t0;}
 printf("buffered %.2f ms, direct %.2f ms per setup+teardown\n",tot[0]/rounds*1e3,tot[1]/rounds*1e3);}
