/dev/fd/3: line 40: ../plait: No such file or directory
