// hallq: the index page only offers the language switch.
'use strict';
HQ.mountLangSwitch();
