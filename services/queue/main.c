#include "bus.h"
#include "config.h"
#include "log.h"
int main(void){return 0;}
